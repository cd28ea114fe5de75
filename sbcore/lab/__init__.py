"""Global-context lab: long-range tasks beyond a plain network's receptive field."""

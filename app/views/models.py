"""Models: a plain-language summary of each model first, then its cost, accuracy, confusion matrix,
recipe and card (all from its checkpoint metadata); and loading your own checkpoint into this session."""
from __future__ import annotations

import hashlib

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from torch import nn

from app import checkpoints, compute, guard, links, plots, state, tour
from sbcore import analysis, list_models
from sbcore.cost import CostReport
from sbcore.errors import SBCoreError

PARAMS = [links.Param("model", "models_model", lambda: state.model_names(untrained=True))]


def _load_sbcore_checkpoint(weights, metadata) -> None:
    data = weights.getvalue()
    model = checkpoints.load_uploaded_checkpoint(weights.name, data, metadata.getvalue())
    _adopt(model, weights.name, data)


def _load_reference(upload, architecture: str, num_classes: int, in_chans: int) -> None:
    data = upload.getvalue()
    _adopt(checkpoints.load_reference_state_dict(upload.name, data, architecture, num_classes, in_chans), upload.name, data)


def _adopt(model, file_name: str, data: bytes) -> None:
    name = state.add_user_model(model, file_name, hashlib.sha256(data).hexdigest())
    st.session_state["models_model"] = name
    st.success(f"Loaded {name}. It now appears in every model picker for this session.")


def checkpoint_loader() -> None:
    """The expander for the user's own checkpoints (sbcore or reference-code format)."""
    with st.expander("Load your own checkpoint", icon=":material/upload_file:"):
        sbcore_tab, reference_tab = st.tabs(["sbcore checkpoint (.safetensors + .json)", "Reference-code state dict (.pth)"])
        with sbcore_tab:
            st.caption("The two files `sbcore train` or `save_checkpoint` writes: weights and the metadata beside them.")
            # no type=: Streamlit's check raises outside the page guard; the loader judges the content
            weights = st.file_uploader("Weights", key="models_weights", help="a .safetensors file")
            metadata = st.file_uploader("Metadata", key="models_metadata", help="its .json metadata")
            if st.button("Load checkpoint", key="models_load", disabled=not (weights and metadata)):
                try:
                    _load_sbcore_checkpoint(weights, metadata)
                except SBCoreError as error:
                    guard.say_error(error)
        with reference_tab:
            st.caption(
                "A `torch.save` state dict, e.g. trained with the authors' reference code; it is read with "
                "`weights_only=True`, so it cannot run code."
            )
            architectures = list_models()
            columns = st.columns(3)
            architecture = columns[0].selectbox(
                "Architecture", architectures, index=architectures.index("sb_resnet50"), key="models_architecture"
            )
            num_classes = columns[1].number_input("Classes", 1, 100_000, 1000, key="models_classes")
            in_chans = columns[2].selectbox("Input channels", [3, 1], key="models_in_chans")
            state_dict = st.file_uploader("State dict", key="models_state_dict", help="a torch.save file (.pth, .pt, .bin)")
            if st.button("Load state dict", key="models_load_reference", disabled=state_dict is None):
                try:
                    _load_reference(state_dict, architecture, int(num_classes), in_chans)
                except SBCoreError as error:
                    guard.say_error(error)


def summary(name: str, model: nn.Module, cost: CostReport) -> None:
    """One paragraph a newcomer can read: what the model is, what it adds, what it costs and scores."""
    meta = model.metadata
    c, h, w = cost.input_size
    sb_blocks, nl_blocks = analysis.spatial_bias_blocks(model), analysis.non_local_blocks(model)
    adds = []
    if sb_blocks:
        stages = sorted({block.split(".")[0] for block in sb_blocks})
        adds.append(f"spatial-bias branches in {len(sb_blocks)} blocks ({', '.join(stages)}), "
                    f"{cost.params_spatial_bias / 1e3:.1f} k parameters in all")
    if nl_blocks:
        adds.append(f"{len(nl_blocks)} non-local blocks ({', '.join(nl_blocks)}), "
                    f"{cost.params_non_local / 1e3:.1f} k parameters in all")
    test = meta.metrics.get("test")
    trained = (f"trained on {meta.training.get('dataset', 'its data')} and scores **{test['top1']:.1f}%** top-1 on its test set"
               if test else "has random weights (untrained)" if state.is_untrained(name) else "records no test score")
    st.markdown(
        f"**{name}** is a {meta.architecture} for {c}x{h}x{w} inputs and {len(meta.class_names)} classes, "
        f"{'with ' + ' and '.join(adds) if adds else 'a plain ResNet with no global-context branch'}. "
        f"It has {cost.params / 1e6:.3f} M parameters, needs {cost.flops / 1e6:.1f} M FLOPs per image, and {trained}."
    )


TOP5_MIN_CLASSES = 5  # top-5 means something only with more than five classes


def tiles(name: str, model: nn.Module, cost: CostReport) -> None:
    test = model.metadata.metrics.get("test")
    top5 = test is not None and len(model.metadata.class_names) > TOP5_MIN_CLASSES and "top5" in test
    tiles = [("Parameters", f"{cost.params / 1e6:.3f} M"), ("By spatial bias", f"{cost.params_spatial_bias / 1e6:.3f} M"),
             ("By non-local", f"{cost.params_non_local / 1e6:.3f} M"),
             ("FLOPs / image", f"{cost.flops / 1e6:.1f} M" if cost.flops < 1e9 else f"{cost.flops / 1e9:.2f} G"),
             ("Test top-1", f"{test['top1']:.2f}%" if test else "n/a")] + ([("Test top-5", f"{test['top5']:.2f}%")] if top5 else [])
    for row in (tiles[:3], tiles[3:]):  # two rows of three: no label is cut off on a narrow screen
        for column, (label, value) in zip(st.columns(3), row):
            column.metric(label, value, help="Parameters added by the spatial-bias branches" if label == "By spatial bias"
                          else "Parameters added by the non-local blocks" if label == "By non-local" else None)
    if state.is_untrained(name):
        st.caption("Untrained: random weights, so there is no accuracy to show; cost and structure are real.")
    elif not test:
        st.caption("This checkpoint records no test accuracy.")


def details(name: str, model: nn.Module, cost: CostReport) -> None:
    """Tabs: architecture per stage, accuracy, training recipe, model card."""
    meta = model.metadata
    test = meta.metrics.get("test")
    architecture_tab, accuracy_tab, recipe_tab, card_tab = st.tabs(["Architecture", "Accuracy", "Training recipe", "Model card"])
    with architecture_tab:
        c, h, w = cost.input_size
        st.markdown(
            f"**{meta.architecture}**, input {c}x{h}x{w}, {len(meta.class_names)} classes; "
            f"weights: {meta.pretrained or 'random initialisation'}."
        )
        stages = pd.DataFrame(
            [{"stage": stage, "params": counts["total"], "added by SB": counts["spatial_bias"], "added by NL": counts["non_local"]}
             for stage, counts in cost.per_stage.items()]
        )
        st.dataframe(stages, hide_index=True)
        plots.download("CSV", stages, f"{name}_stages.csv", key="models_stages_csv")
        with st.expander("Options and preprocessing (JSON)"):
            st.json({"model_kwargs": meta.model_kwargs, "preprocessing": meta.preprocessing.__dict__})
    with accuracy_tab:
        if not test:
            st.info("No test metrics in this model's metadata.")
        else:
            per_class = pd.DataFrame({"class": meta.class_names, "accuracy": test["per_class"]})
            figure = go.Figure(go.Bar(x=per_class["class"], y=per_class["accuracy"], marker_color="#4c78a8"))
            figure.update_layout(height=320, yaxis_title="accuracy (%)", margin=dict(l=0, r=0, t=10, b=0))
            figure.update_xaxes(automargin=True)
            plots.show_chart(figure, "models_per_class", f"{name}_per_class", per_class)
            confusion = pd.DataFrame(test["confusion"], index=meta.class_names, columns=meta.class_names)
            figure = go.Figure(
                go.Heatmap(z=confusion.values, x=meta.class_names, y=meta.class_names, colorscale="Blues",
                           text=confusion.values, texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>")
            )
            figure.update_yaxes(autorange="reversed", title="true class", automargin=True)  # no label cut off
            figure.update_xaxes(title="predicted class", automargin=True)
            figure.update_layout(height=520, margin=dict(l=0, r=0, t=10, b=0))
            plots.show_chart(figure, "models_confusion", f"{name}_confusion", confusion.reset_index(names="true class"))
    with recipe_tab:
        if meta.training:
            recipe = pd.DataFrame({"setting": list(meta.training), "value": [str(v) for v in meta.training.values()]})
            st.dataframe(recipe, hide_index=True)
            plots.download("JSON", meta.training, f"{name}_training.json", key="models_recipe_json")
        else:
            st.info("No training recipe recorded.")
    with card_tab:
        card = compute.card(model, state.model_key(name))
        st.markdown(card)
        plots.download("Markdown", card, f"{name}_card.md", key="models_card_md")
        plots.download("Metadata JSON", meta.to_dict(), f"{name}.json", key="models_metadata_json")


st.title("Models")
tour.banner()
checkpoint_loader()
state.default_model("models_model", untrained=True)
links.pull(PARAMS)
name = st.selectbox("Model", state.model_names(untrained=True), format_func=state.model_label, key="models_model")
links.push(PARAMS)
model = state.get_model(name)
cost = compute.cost(model, state.model_key(name))
summary(name, model, cost)
tiles(name, model, cost)
details(name, model, cost)

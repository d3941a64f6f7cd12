"""Looking inside models: attention views of BERT-family encoders and BEiT semantic segmentation.

`hf_tasks.interpret.attention` extracts per-head attention weights and renders them (offline HTML
views, a PNG grid); `hf_tasks.interpret.segmentation` runs BEiT segmentation and draws colour overlays.
The submodules import their heavy dependencies (matplotlib, PIL) themselves; import them directly.
"""

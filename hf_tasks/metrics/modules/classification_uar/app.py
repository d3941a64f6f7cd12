"""The Hub Space's page for this module: evaluate's standard widget."""

import evaluate
from evaluate.utils import launch_gradio_widget

launch_gradio_widget(evaluate.load("classification_uar.py"))

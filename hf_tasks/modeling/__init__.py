"""Heads and wrappers that the transformers Auto classes lack, and one builder per model family.

Every family's builder has one signature, `build_model(model_args, head_args, labels, processor)` returning a
`PreTrainedModel`: `text_classifier`, `image_classifier` and `audio_classifier` each define it, for
`hf_tasks.options.ModelArguments` (or its image form), the family's head group (`TextHeadArguments`, ...),
the classes (`hf_tasks.modeling.labels.ClassLabels`) and the checkpoint's processor (tokenizer, image
processor or feature extractor). A recipe never reads a model name or a head option itself: it hands the
groups over, and a new head touches its family's builder and `hf_tasks.options.HEAD_FAMILIES` (and, for a
timm image head, the head layers of `timm_classifier`, which run folders ship).

Importing this package registers each model with `AutoConfig` and its `AutoModelFor*` class, so a
saved run folder loads with `AutoModelFor*.from_pretrained(folder)` after `import hf_tasks.modeling`.
The model modules themselves (`bigru`, `audio`, `mlp`, `timm_classifier`) import only torch,
transformers (and timm) and register nothing: `hf_tasks.portable` ships them in run folders, where
they load with `trust_remote_code=True` on machines without hf_tasks.
"""

from importlib.util import find_spec

from transformers import (
    AutoConfig,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
)

from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.mlp import MLPForImageClassification, MLPImageClassifierConfig

# (config class, Auto model class, model class) for every model this package defines.
CUSTOM_MODELS = [
    (BiGRUConfig, AutoModelForSequenceClassification, BiGRUForSequenceClassification),
    (PooledAudioClassifierConfig, AutoModelForAudioClassification, PooledAudioClassifier),
    (MLPImageClassifierConfig, AutoModelForImageClassification, MLPForImageClassification),
]

if find_spec("timm") is not None:  # the timm wrapper needs the [vision] extra
    from hf_tasks.modeling.timm_classifier import TimmConfig, TimmForImageClassification

    CUSTOM_MODELS.append((TimmConfig, AutoModelForImageClassification, TimmForImageClassification))

for config_class, auto_class, model_class in CUSTOM_MODELS:
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    auto_class.register(config_class, model_class, exist_ok=True)

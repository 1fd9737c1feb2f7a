"""The model layer: the event encoder f_E beside CLIP's frozen towers, and what is built on it.

module             what it holds
=================  ==========================================================
``event_clip``     :class:`EventClip` (f_E, f_I, f_T), :class:`ModelMeta`
``assembly``       registered architectures, configs, wrapping an open_clip model
``factory``        :func:`create_event_clip` from a :class:`ModelSpec`
``checkpoint``     our .safetensors format; import of the paper's vitb.pt / vitl.pt
``prompts``        prompt templates and label lists
``zero_shot``      :class:`ZeroShotClassifier` (prompt-ensemble text weights)
``few_shot``       :class:`FewShotClassifier` (centred prototypes + text)
``anomaly``        text-prompt and reference (k-NN) anomaly scorers
``retrieval``      :class:`EmbeddingIndex` across events, images and texts
``device``         device and autocast precision choice
``backends``               :class:`FrameEncoder`: what runs f_E at inference (torch or onnxruntime)
``onnx_export``            f_E as an ONNX file (``event-clip export --onnx``) and its metadata checks
``onnx_runtime``           the onnxruntime backend: providers (CPU, CUDA, TensorRT), fp16
``backends``       :class:`FrameEncoder`: what runs f_E at inference (torch or onnxruntime)
``onnx_export``    f_E as an ONNX file (``event-clip export --onnx``) and its metadata checks
``onnx_runtime``   the onnxruntime backend: providers (CPU, CUDA, TensorRT), fp16
``finite``         NaN / Inf guards: damaged weights, non-finite embeddings
=================  ==========================================================
=======
=======================  ========================================================================
module                   what it holds
=======================  ========================================================================
``event_clip``           :class:`EventClip` (f_E, f_I, f_T), :class:`ModelMeta`
``assembly``             registered architectures, configs, wrapping an open_clip model
``factory``              :func:`create_event_clip` from a :class:`ModelSpec`
``checkpoint``           our .safetensors format; the loader that also takes the paper's files
``official_checkpoint``  import of the paper's released vitb.pt / vitl.pt
``clip_weights``         open_clip models from configs, filled with checked weights
``prompts``              prompt templates and label lists
``zero_shot``            :class:`ZeroShotClassifier` (prompt-ensemble text weights)
``few_shot``             :class:`FewShotClassifier` (centred prototypes + text)
``anomaly``              text-prompt and reference (k-NN) anomaly scorers
``retrieval``            :class:`EmbeddingIndex` across events, images and texts (index, store)
``device``               device and autocast precision choice
``finite``               NaN / Inf guards: damaged weights, non-finite embeddings
``torch_load``           what torch's weights_only loader says when it refuses a file
=======================  ========================================================================
"""

from .event_clip import EventClip, ModelMeta
from .factory import ModelSpec, PretrainedUnavailableError, create_event_clip

__all__ = ["EventClip", "ModelMeta", "ModelSpec", "PretrainedUnavailableError", "create_event_clip"]

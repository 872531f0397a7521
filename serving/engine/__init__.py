"""Torch-free ONNX streaming recognizer (sherpa-onnx compatible models).

Import from the submodules: ``serving.engine.recognizer`` (``Recognizer``, ``EndpointConfig``),
``serving.engine.offline`` (``Transcriber``, ``transcribe_file``). This file stays empty so that
importing the package does not load onnxruntime.
"""

"""Transducer decoding in PyTorch: greedy and modified beam search (with hot words) in
``training.decode.search``, chunk-by-chunk streaming simulation in
``training.decode.streaming``. This package file stays light.
"""

"""The streaming setting the served model runs at, in 50 Hz frames (after ``encoder_embed``).

One place for it: the export writes it into the ONNX files the servers load, and ``eval``, the
torch streaming decoder and the CLI default to it, so a figure measured without options is a
figure of what is served. Kept free of imports so the CLI can read it at start-up.
"""

# 320 ms chunks
SERVED_CHUNK_SIZE = 16
# 2.56 s of attention history: ~1 point CER better than 64 on the default model at the same
# measured real-time factor (recipes/zipformer_synth/RESULTS.md, "Ninth session")
SERVED_LEFT_CONTEXT = 128

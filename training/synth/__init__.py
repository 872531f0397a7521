"""Synthetic hotline speech: text generator, pinyin, espeak-ng, telephone channel, call renderer."""

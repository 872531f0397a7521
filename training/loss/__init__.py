"""Transducer losses: k2's pruned RNN-T (simple/smoothed, pruned, full) in plain PyTorch.

Import from ``training.loss.rnnt``; this package file stays light.
"""

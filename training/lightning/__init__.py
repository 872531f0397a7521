"""Lightning training of the transducer: data module, module, config, callbacks, tokens.

Import the submodules directly (``training.lightning.module`` etc.); this file stays light.
"""

"""icefall-compatible streaming Zipformer2 transducer.

Import from the submodules (`training.model.transducer`, `.checkpoint`, `.config`); this
package file stays free of heavy imports.
"""

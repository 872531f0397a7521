"""Speech data into Lhotse manifests: importers, the shared fbank extractor, corpus statistics.

Import the submodules directly (``training.data.importers``, ``training.data.fbank``,
``training.data.stats``); this package file stays light.
"""

"""hotline-asr: the command-line entry point. The work lives in training/, serving/, annotation/,
registry/ and reports/; the modules here only parse options and call into them."""

"""vlsae: sparse autoencoders on vision-language embedding spaces.

Modules map one-to-one onto the workflow stages (see README "Architecture"):
``store`` (embeddings), ``synth`` (ground-truth DGPs), ``sae`` (architectures and
trainer), ``align`` (post-hoc Hungarian alignment), ``metrics`` and ``report``.
"""

__version__ = "0.1.0"

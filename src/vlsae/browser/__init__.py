"""The latent browser: per-latent statistics (:mod:`.latents`) and the static site that shows them (:mod:`.site`)."""

"""The deployable Modal app that embeds text on a GPU (see ``modal_functions.embedder``)."""

"""Layer 5, from names and options to a run's configuration: the plugin registry found through
entry points (``registry``), presets, ``--config`` files and overrides resolved into a RunConfig
(``resolve``), the shared command-line parser (``commandline``) and which classes a value may
name (``imports``)."""

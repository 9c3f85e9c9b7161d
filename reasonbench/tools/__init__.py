"""Layer 7, commands built on runs: sweeps over models x tasks x seeds (``sweep``), the speed
benchmark (``bench``), the plugin scaffold (``scaffold``), the conformance kit that checks a
plugin (``conformance``, public as ``reasonbench.testing``), importing the reference code's
checkpoints (``checkpoint_import``) and data preparation and inspection (``dataops``). The
leaderboard (``reasonbench.leaderboard``) sits on the same layer; neither imports the other."""

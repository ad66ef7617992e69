"""Sub-commands of the ``mlcalc`` command line, one module each.

Every module here defines ``register(commands)``, which adds its parser to the ``argparse``
sub-parsers and sets ``run=<function(args) -> exit code>`` as a default. The command line finds the
modules itself: a new command is a new file. Import heavy packages inside ``run``, not at module
level, so that ``mlcalc --help`` stays fast.
"""

"""looplint: a linter for PyTorch training loops.

The flow is files -> parse -> training-loop model -> rules -> report:

* ``looplint.files``        finds the files to lint
* ``looplint.engine``       parses one file, builds its model, runs the rules
* ``looplint.model``        the training-loop model (roles, loops, events, gradient flow)
* ``looplint.rules``        one module per rule (the ``rules/`` folder of the repository)
* ``looplint.suppress``     ``# noqa`` handling
* ``looplint.report``       one module per output format
* ``looplint.cli``          the command line

Importing this package imports neither torch nor any rule module.
"""

__version__ = "0.1.0"

"""The reference runtime: run a training program under a recorder and prove (or refute) each finding.

* ``recorder``  runs inside the program's process, observes optimizers, gradients, schedulers and loops
* ``runner``    runs a program in a subprocess with a timeout and a step budget; returns its ``Trace``
* ``trace``     the recorded events, read back, with the loop questions the oracles ask
* ``oracles``   one function per rule: the dynamic signature that proves its bug
* ``confirm``   ``looplint confirm PATH...``: static findings beside dynamic evidence

Needs torch (the ``runtime`` extra). The linter never imports this package.
"""

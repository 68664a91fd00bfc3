"""Program pieces that several test modules build variants from."""

# An object that runs a training step's gradient events for its caller (a mixed-precision helper's shape):
# it clears, backpropagates and steps what it is handed. Names are placeholders, so that tests can vary them.
HELPER_CLASS = """\
class {Helper}:
    def __init__(self, model):
        self.params = list(model.parameters())

    def {clear}(self):
        for p in self.params:
            p.grad = None

    def {back}(self, loss):
        loss.backward()

    def {apply}(self, opt):
        opt.step()
"""


def write(root, files):
    """Writes ``files`` ({relative path: text, dedented}) below the folder ``root``."""
    import os
    import textwrap

    for name, text in files.items():
        path = os.path.join(str(root), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))

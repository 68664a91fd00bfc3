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

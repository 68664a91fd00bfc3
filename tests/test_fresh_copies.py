"""LL107 and a module made by each call: a federated client (or any helper) that builds its optimizer over
the module it is handed, called every round with a copy of the global model (``copy.deepcopy(g).to(dev)``),
trains a module of its own each time: the new optimizer resets
no state of parameters that persist (looplint.model.FileModel.handed_fresh). The helper lives in another
module, as in the federated-learning repositories where this was found."""
import pytest

from looplint.engine import lint_file

HELPER_FUNCTION = """\
def {fn}(net, data, lr):
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    for ep in range(2):
        for x, y in data:
            optimizer.zero_grad()
            loss = ((net(x) - y) ** 2).mean()
            loss.backward()
            optimizer.step()
    return net.state_dict()
"""

HELPER_METHOD = """\
class Client:
    def __init__(self, data, lr):
        self.data, self.lr = data, lr

    def {fn}(self, net):
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9)
        for ep in range(2):
            for x, y in self.data:
                optimizer.zero_grad()
                loss = ((net(x) - y) ** 2).mean()
                loss.backward()
                optimizer.step()
        return net.state_dict()
"""

DRIVER = """\
import copy
import torch
from clients import {imported}

global_model = torch.nn.Linear(3, 1)
data = [(torch.randn(4, 3), torch.randn(4, 1))]
for {rounds} in range(10):
    states = []
    for k in range(3):
        states.append({call})
    global_model.load_state_dict(states[0])
"""

CALLS = {
    "function": (HELPER_FUNCTION, "{fn}", "{fn}({model}, data, 0.1)"),
    "function_keyword": (HELPER_FUNCTION, "{fn}", "{fn}(net={model}, data=data, lr=0.1)"),
    "method": (HELPER_METHOD, "Client", "Client(data, 0.1).{fn}({model})"),
    "method_keyword": (HELPER_METHOD, "Client", "Client(data, 0.1).{fn}(net={model})"),
}
FRESH = ["copy.deepcopy(global_model)", "copy.deepcopy(global_model).to('cpu')", "copy.deepcopy(global_model).cuda()"]


def codes(tmp_path, kind, fn, rounds, model):
    helper, imported, call = CALLS[kind]
    (tmp_path / "clients.py").write_text("import torch\n\n\n" + helper.format(fn=fn))
    driver = tmp_path / "fed.py"
    driver.write_text(DRIVER.format(imported=imported.format(fn=fn), rounds=rounds, call=call.format(fn=fn, model=model)))
    return sorted(d.code for d in lint_file(str(driver)))


@pytest.mark.parametrize("kind", sorted(CALLS))
@pytest.mark.parametrize("fn, rounds", [("local_train", "epoch"), ("update_weights", "round_idx")])
@pytest.mark.parametrize("model", FRESH)
def test_a_module_made_by_each_call_gets_a_new_optimizer(tmp_path, kind, fn, rounds, model):
    assert codes(tmp_path, kind, fn, rounds, model) == []

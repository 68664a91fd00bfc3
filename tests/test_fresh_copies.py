"""LL107 and a module made by each call: a federated client (or any helper) that builds its optimizer over
the module it is handed, called every round with a copy of the global model (``copy.deepcopy(g).to(dev)``)
or a module built in the call, trains a module of its own each time: the new optimizer resets no state of
parameters that persist (``Roles.fresh_module_key``, ``FileModel.built_in``). The helper lives in another
module, as in the federated-learning repositories where this was found; its loops read as they would in
the same file."""
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
        {setup}
        states.append({call})
    global_model.load_state_dict(states[0])
"""

CALLS = {  # (helper, the name imported, a statement before the call, the call)
    "function": (HELPER_FUNCTION, "{fn}", "pass", "{fn}({model}, data, 0.1)"),
    "function_keyword": (HELPER_FUNCTION, "{fn}", "pass", "{fn}(net={model}, data=data, lr=0.1)"),
    "method": (HELPER_METHOD, "Client", "pass", "Client(data, 0.1).{fn}({model})"),
    "method_keyword": (HELPER_METHOD, "Client", "pass", "Client(data, 0.1).{fn}(net={model})"),
    "method_of_a_name": (HELPER_METHOD, "Client", "local = Client(data, 0.1)", "local.{fn}(net={model})"),
}
FRESH = ["copy.deepcopy(global_model)", "copy.deepcopy(global_model).to('cpu')", "copy.deepcopy(global_model).cuda()",
         "torch.nn.Linear(3, 1)", "torch.nn.Linear(3, 1).to('cpu')"]


def codes(tmp_path, kind, fn, rounds, model):
    helper, imported, setup, call = CALLS[kind]
    (tmp_path / "clients.py").write_text("import torch\n\n\n" + helper.format(fn=fn))
    driver = tmp_path / "fed.py"
    driver.write_text(DRIVER.format(imported=imported.format(fn=fn), rounds=rounds, setup=setup,
                                    call=call.format(fn=fn, model=model)))
    return sorted(d.code for d in lint_file(str(driver)))


@pytest.mark.parametrize("kind", sorted(CALLS))
@pytest.mark.parametrize("fn, rounds", [("local_train", "epoch"), ("update_weights", "round_idx")])
@pytest.mark.parametrize("model", FRESH)
def test_a_module_made_by_each_call_gets_a_new_optimizer(tmp_path, kind, fn, rounds, model):
    assert codes(tmp_path, kind, fn, rounds, model) == []


@pytest.mark.parametrize("kind", sorted(CALLS))
@pytest.mark.parametrize("fn", ["local_train", "train"])
@pytest.mark.parametrize("model", FRESH + ["global_model", "global_model.to('cpu')"])
def test_the_helper_in_another_module_reads_as_in_the_same_file(tmp_path, kind, fn, model):
    """The loops of an imported module's function are classified as the file's own (each call of a helper
    with an epoch loop of its own is a whole run): the same findings either way."""
    imported = codes(tmp_path, kind, fn, "epoch", model)
    helper, _, setup, call = CALLS[kind]
    driver = DRIVER.replace("from clients import {imported}\n", helper.format(fn=fn) + "\n")
    single = tmp_path / "single.py"
    single.write_text(driver.format(rounds="epoch", setup=setup, call=call.format(fn=fn, model=model)))
    assert sorted(d.code for d in lint_file(str(single))) == imported

"""clip after a helper stepped and cleared the gradients (set to None): nothing is left to clip, and torch
refuses to clip nothing (the program crashes at the clip)."""
import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)


def step_and_clear(opt):
    opt.step()
    opt.zero_grad(set_to_none=True)


for epoch in range(2):
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        step_and_clear(optimizer)
        torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)  # expect: LL403

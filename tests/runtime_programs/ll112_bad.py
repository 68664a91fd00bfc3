"""Oracle program: a loss computed under no_grad, forced to require grad, backpropagated."""
import torch
from torch import nn

torch.manual_seed(0)
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.randn(16, 4), torch.randn(16, 1)
for step in range(3):
    optimizer.zero_grad()
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(x), y)
    loss.requires_grad_()  # expect: LL112
    loss.backward()  # expect: LL112
    optimizer.step()

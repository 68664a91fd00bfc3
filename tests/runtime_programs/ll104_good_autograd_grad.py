"""Gradients computed with torch.autograd.grad and assigned by hand before the step (no backward call)."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
params = list(model.parameters())

for step in range(10):
    loss = torch.nn.functional.mse_loss(model(X), Y)
    grads = torch.autograd.grad(loss, params)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()
    optimizer.zero_grad()

"""LBFGS stepped with a closure; Adam beside it stepped without one."""
import torch

torch.manual_seed(0)
X, Y = torch.randn(32, 4), torch.randn(32, 1)
model = torch.nn.Linear(4, 1)
head = torch.nn.Linear(4, 1)
lbfgs = torch.optim.LBFGS(model.parameters(), lr=0.1, max_iter=4)
adam = torch.optim.Adam(head.parameters(), lr=1e-2)


def closure():
    lbfgs.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), Y)
    loss.backward()
    return loss


for i in range(3):
    lbfgs.step(closure)
    adam.zero_grad()
    torch.nn.functional.mse_loss(head(X), Y).backward()
    adam.step()

"""An LBFGS closure written as a method of a trainer class, with zero_grad first."""
import torch


class Fit:
    def __init__(self):
        self.X, self.Y = torch.randn(32, 4), torch.randn(32, 1)
        self.model = torch.nn.Linear(4, 1)
        self.optimizer = torch.optim.LBFGS(self.model.parameters(), lr=0.1, max_iter=5)

    def closure(self):
        self.optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(self.model(self.X), self.Y)
        loss.backward()
        return loss

    def run(self, steps):
        for _ in range(steps):
            self.optimizer.step(self.closure)


if __name__ == "__main__":
    torch.manual_seed(0)
    Fit().run(3)

"""Actor-critic networks: an MLP or IMPALA-CNN encoder, categorical or Gaussian actions.

Observations of any dtype enter through `Agent.encode`: Box observations become float32
(an image, (H, W, C), stays as it is for the CNN, which scales it to [0, 1]), Discrete ones
a one-hot vector, and vector observations are optionally normalized by running statistics.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from gsl_k8s.spec import NetworkSpec

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def layer_init(layer: nn.Module, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights and constant bias, as in the PPO implementation details."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_features: int, hidden_sizes: list[int], activation: str) -> nn.Sequential:
    """A fully connected trunk."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_features, size)), _ACTIVATIONS[activation]()]
        in_features = size
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaCNN(nn.Module):
    """The IMPALA encoder (Espeholt et al. 2018) for (H, W, C) uint8 image observations."""

    def __init__(self, obs_shape: tuple[int, ...], channels=(16, 32, 32), out_features=256):
        super().__init__()
        height, width, in_channels = obs_shape
        stages: list[nn.Module] = []
        for out_channels in channels:
            stages += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),
                ResidualBlock(out_channels),
                ResidualBlock(out_channels),
            ]
            in_channels = out_channels
            height, width = (height + 1) // 2, (width + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.ReLU(),
            layer_init(nn.Linear(in_channels * height * width, out_features)),
            nn.ReLU(),
        )
        self.out_features = out_features

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(obs.permute(0, 3, 1, 2).float() / 255.0))


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of batches, as buffers so checkpoints hold them."""

    def __init__(self, shape: tuple[int, ...] = ()):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Fold a batch (first dimension: samples) into the statistics (parallel algorithm)."""
        batch = batch.reshape(-1, *self.mean.shape).to(self.mean.dtype)
        batch_mean, batch_var, n = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (
            self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        ) / total
        self.count = total


class ObservationNormalizer(RunningMeanStd):
    """Observations standardized by their running statistics, clipped to +-`clip`."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0):
        super().__init__(shape)
        self.clip = clip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return ((obs - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)


def is_image(space: gym.Space) -> bool:
    """(H, W, C) Box observations: what the IMPALA-CNN takes."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def encoded_shape(space: gym.Space) -> tuple[int, ...]:
    """The shape of an observation after `Agent.encode`; a clear error for other spaces."""
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape)
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),)
    raise ValueError(
        f"unsupported observation space {space}: the trainer takes Box and Discrete observations "
        "(flatten others with a gymnasium wrapper, e.g. FlattenObservation)"
    )


class Agent(nn.Module):
    """Actor and critic. MLP encoders are separate per head; the IMPALA-CNN is shared."""

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        network: NetworkSpec,
        normalize_observations: bool = False,
    ):
        super().__init__()
        obs_shape = encoded_shape(observation_space)
        self.observation_space = observation_space
        self.one_hot = isinstance(observation_space, gym.spaces.Discrete)
        encoder = network.encoder
        if encoder == "auto":
            encoder = "impala-cnn" if is_image(observation_space) else "mlp"
        self.image_encoder = encoder == "impala-cnn"
        normalize = normalize_observations and not self.image_encoder
        self.normalizer = ObservationNormalizer(obs_shape) if normalize else None
        if encoder == "impala-cnn":
            self.actor_body = ImpalaCNN(obs_shape, network.channels)
            self.critic_body = self.actor_body
            features = self.actor_body.out_features
        else:
            flat = int(np.prod(obs_shape))
            self.actor_body = nn.Sequential(
                nn.Flatten(), mlp(flat, network.hidden_sizes, network.activation)
            )
            self.critic_body = nn.Sequential(
                nn.Flatten(), mlp(flat, network.hidden_sizes, network.activation)
            )
            features = network.hidden_sizes[-1] if network.hidden_sizes else flat
        self.continuous = isinstance(action_space, gym.spaces.Box)
        if self.continuous:
            action_dim = int(np.prod(action_space.shape))
            self.actor_head = layer_init(nn.Linear(features, action_dim), std=0.01)
            self.log_std = nn.Parameter(torch.full((action_dim,), float(network.initial_log_std)))
        elif isinstance(action_space, gym.spaces.Discrete):
            self.actor_head = layer_init(nn.Linear(features, int(action_space.n)), std=0.01)
        else:
            raise ValueError(f"unsupported action space {action_space}")
        self.critic_head = layer_init(nn.Linear(features, 1), std=1.0)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations as the network takes them: float32 (images keep their dtype for
        the CNN), Discrete ones one-hot; not yet normalized."""
        if self.one_hot:
            return nn.functional.one_hot(obs.long(), int(self.observation_space.n)).float()
        return obs if self.image_encoder else obs.float()

    @torch.no_grad()
    def update_normalizer(self, obs: torch.Tensor) -> None:
        """Fold a batch of raw observations into the normalizer's statistics, if any."""
        if self.normalizer is not None:
            self.normalizer.update(self.encode(obs))

    def prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the trunks take them: encoded, then normalized if configured."""
        obs = self.encode(obs)
        return self.normalizer(obs) if self.normalizer is not None else obs

    @torch.no_grad()
    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """The actor's encoding of a batch of observations: what its head reads."""
        return self.actor_body(self.prepare(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values, shape (batch,)."""
        return self.critic_head(self.critic_body(self.prepare(obs))).squeeze(-1)

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (categorical actions) or Gaussian means (continuous actions)."""
        return self.actor_head(self.actor_body(self.prepare(obs)))

    def distribution(self, obs: torch.Tensor) -> Distribution:
        """The policy's action distribution for a batch of observations."""
        return self._distribution(self.policy_output(obs))

    def distribution_and_value(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """`distribution` and `value` at once, encoding the observations once."""
        x = self.prepare(obs)
        value = self.critic_head(self.critic_body(x)).squeeze(-1)
        return self._distribution(self.actor_head(self.actor_body(x))), value

    def _distribution(self, out: torch.Tensor) -> Distribution:
        # The network's outputs are valid by construction: skip torch's per-call argument checks.
        if self.continuous:
            std = self.log_std.exp().expand_as(out)
            return Independent(Normal(out, std, validate_args=False), 1, validate_args=False)
        return Categorical(logits=out, validate_args=False)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for a batch of observations: sampled, or the mode when deterministic."""
        dist = self.distribution(obs)
        if not deterministic:
            return dist.sample()
        return dist.mean if self.continuous else dist.probs.argmax(-1)

    @torch.no_grad()
    def temper(self, temperature: float) -> None:
        """Make the policy pi into pi^(1/T), renormalised: softmax logits divided by T; a
        Gaussian's standard deviation times sqrt(T). Its mode is unchanged."""
        if temperature <= 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if self.continuous:
            self.log_std += 0.5 * float(np.log(temperature))
        else:
            self.actor_head.weight /= temperature
            self.actor_head.bias /= temperature

"""The policy stage: rollouts, log-probabilities, rewards."""

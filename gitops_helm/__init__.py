"""gitops-helm: a GitOps agent that keeps Helm releases equal to what a Git repository declares."""

__version__ = "0.1.0.dev0"

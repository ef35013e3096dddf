"""Review a change of syncs.yaml like code: `activation plan --base REV`."""

from activation.review.compare import review_project
from activation.review.git import GitError
from activation.review.model import Review

__all__ = ["GitError", "Review", "review_project"]

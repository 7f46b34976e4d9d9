"""Torch dataset over a decoded cache, serving dict samples (torchxrayvision style)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.data.cache import Cache
from bench.evaluate.metrics import rasterize_boxes


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 images (..., H, W) -> float32 tensor (..., 1, H, W) mapped linearly to [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(images)).float()
    return (t / 127.5 - 1.0).unsqueeze(-3)


class RSNADataset(Dataset):
    """One split of the data. Sample keys: image (1,S,S) in [-1,1], domain, boxes (MAX_BOXES,4)
    at working size, n_boxes, box_mask (1,S,S), patientId, and when the data is synthetic
    lesion_mask (1,S,S) and healthy_twin (1,S,S) in [-1,1] (the image without its lesions; equal to
    the image where the mask is 0). Arrays are also exposed whole for fast batched access."""

    def __init__(self, cache: Cache, indices: np.ndarray) -> None:
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.size = cache.size
        self.domains = cache.domains[self.indices]
        self.boxes = cache.boxes[self.indices]
        self.n_boxes = cache.n_boxes[self.indices]
        self.patient_ids = [cache.patient_ids[i] for i in self.indices]
        self.has_lesion_masks = cache.masks is not None
        self.has_healthy_twin = cache.twins is not None

    @property
    def keys(self) -> frozenset[str]:
        """The keys of this split's samples and batches (``Method.needs`` is checked against them)."""
        keys = {"image", "domain", "boxes", "n_boxes", "box_mask", "patientId"}
        keys |= {"lesion_mask"} if self.has_lesion_masks else set()
        keys |= {"healthy_twin"} if self.has_healthy_twin else set()
        return frozenset(keys)

    def __len__(self) -> int:
        return len(self.indices)

    def images_u8(self, idx: np.ndarray | list[int]) -> np.ndarray:
        """uint8 images (B, S, S) for positions ``idx`` of this split."""
        return self.cache.images[self.indices[np.asarray(idx)]]

    def batch(self, idx: np.ndarray | list[int]) -> dict[str, Any]:
        """A collated batch for positions ``idx`` (faster than a DataLoader on small images)."""
        idx = np.asarray(idx, dtype=np.int64)
        out: dict[str, Any] = {
            "image": to_unit(self.images_u8(idx)),
            "domain": torch.from_numpy(self.domains[idx]),
            "boxes": torch.from_numpy(self.boxes[idx]),
            "n_boxes": torch.from_numpy(self.n_boxes[idx]),
            "box_mask": torch.from_numpy(rasterize_boxes(self.boxes[idx], self.n_boxes[idx], self.size))
            .unsqueeze(1)
            .float(),
            "patientId": [self.patient_ids[i] for i in idx],
        }
        if self.has_lesion_masks:
            masks = self.cache.masks[self.indices[idx]]
            out["lesion_mask"] = torch.from_numpy(np.ascontiguousarray(masks)).unsqueeze(1).float()
        if self.has_healthy_twin:
            out["healthy_twin"] = to_unit(self.cache.twins[self.indices[idx]])
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a split of {len(self)} images")
        b = self.batch([i % len(self)])
        return {k: v[0] for k, v in b.items()}

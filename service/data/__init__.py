"""Datasets: the IDX reader, named datasets, downloading, and splits."""

from service.data.datasets import DATASETS, Dataset, dataset_info, load_dataset, locate
from service.data.idx import read_idx, read_idx_pair, write_idx
from service.data.split import stratified_split

__all__ = [
    "DATASETS",
    "Dataset",
    "dataset_info",
    "load_dataset",
    "locate",
    "read_idx",
    "read_idx_pair",
    "stratified_split",
    "write_idx",
]

"""Datasets: the catalogue, the IDX reader, finding, loading and downloading, and splits."""

from service.data.catalogue import DATASETS, DatasetInfo, dataset_info
from service.data.datasets import Dataset, load_dataset, locate
from service.data.idx import read_idx, read_idx_pair, write_idx
from service.data.split import stratified_split

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetInfo",
    "dataset_info",
    "load_dataset",
    "locate",
    "read_idx",
    "read_idx_pair",
    "stratified_split",
    "write_idx",
]

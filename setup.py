"""Where the installed packages come from (the metadata is in pyproject.toml).

The checkout keeps short folder names (``server/``, ``client/``, ``static/``) so that
``python server.py`` and ``import server`` work in it; installed, they take names that cannot
clash with other projects in site-packages: ``pipelines_server`` (with the page's files in
``pipelines_server/static`` and its browser libraries in ``pipelines_server/vendor``) and
``pipelines_client``. Sub-packages and data folders are found here, so a new one needs no edit.
"""

from setuptools import find_namespace_packages, find_packages, setup

# installed package -> folder in the checkout
_CODE = {"pipelines": "pipelines", "pipelines_server": "server", "pipelines_client": "client"}
# installed data folder (every file in it ships) -> folder in the checkout
_DATA = {"pipelines_server.static": "static", "pipelines_server.vendor": "server/vendor"}
# Data sub-folders whose names Python could import are listed as packages too (else setuptools
# warns); their files ship through the recursive globs below.


def _tree(package: str, folder: str, find=find_packages) -> list[str]:
    return [package, *(f"{package}.{sub}" for sub in find(folder))]


_code = [name for package, folder in _CODE.items() for name in _tree(package, folder)]
_data = [
    name
    for package, folder in _DATA.items()
    for name in _tree(package, folder, lambda f: find_namespace_packages(f, include=["*"]))
]

setup(
    packages=_code + _data,
    package_dir={
        **{package: folder for package, folder in _CODE.items() if package != folder},
        **{package: folder for package, folder in _DATA.items() if package != "pipelines_server.vendor"},
    },
    package_data={"pipelines": ["py.typed"], **{package: ["**/*"] for package in _DATA}},
)

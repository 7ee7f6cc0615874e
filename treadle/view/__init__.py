"""`treadle view`: a local web page over what runs wrote (evaluations, traces, attribution and
rank reports, optimize runs), served on 127.0.0.1 or exported as one self-contained file.

It reads files only: `catalog` finds and sorts them, `payloads` turns each into the JSON a page
draws, `server` serves the page (`page`, with `static/`'s script and style) and the JSON,
`export` writes both into one HTML file.
"""

from treadle.view.catalog import Catalog, Source
from treadle.view.export import export_html
from treadle.view.payloads import Views
from treadle.view.server import ViewServer, open_browser

__all__ = ["Catalog", "Source", "ViewServer", "Views", "export_html", "open_browser"]

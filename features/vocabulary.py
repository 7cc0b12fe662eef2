"""Value lists of ``../shared/CONTRACT.md`` that modules without Spark need too.

The indicator registry (:mod:`zicht.features.registry`) is checked when settings load, before
a SparkSession exists, so it imports no Spark module; the schemas, the validation rules and the
network read the same lists from here, so a layer added to the contract is added once.
"""

from __future__ import annotations

# person_links.layer (CONTRACT.md, person_links): the layers of the CBS person network
LINK_LAYERS = ("familie", "huishouden", "buren", "collega", "klasgenoot")

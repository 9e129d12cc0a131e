"""Protocol messages: query parameters, SearchRequest, PatchOp and BulkRequest parsing."""

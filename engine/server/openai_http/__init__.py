"""An OpenAI-compatible HTTP server on the engine process: the endpoints' types
(``protocol``), their handler (``serving``) and the HTTP transport (``app``)."""

"""What the function runs to answer an evaluation: the ASGI app, OFREP, the HTTP edges, the Lambda's logs."""

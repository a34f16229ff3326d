"""Real servers the tests start on free loopback ports and stop afterwards: the service itself
(uvicorn), moto in server mode, and Amazon's DynamoDB Local (its launcher is in the package, the bench uses it too). Fixtures are in fixtures.py."""

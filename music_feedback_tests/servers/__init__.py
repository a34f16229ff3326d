"""Real servers the tests start on free loopback ports and stop afterwards: the service itself
(uvicorn), moto in server mode, and Amazon's DynamoDB Local. Fixtures are in fixtures.py."""

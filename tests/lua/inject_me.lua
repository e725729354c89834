-- Injected by the console test (tests/blackbox/console.rs) into a live service: what it prints
-- comes back to the console.
print("injected into", SERVICE_NAME)

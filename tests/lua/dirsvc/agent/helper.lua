return { text = "next to the service" }

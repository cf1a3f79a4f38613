"""Network drivers: thin asyncio I/O around pure protocol cores."""

-- Seed of data/greetings.db (committed as built by: sqlite3 greetings.db < greetings.sql).
CREATE TABLE greetings (id INTEGER PRIMARY KEY, lang TEXT NOT NULL, text TEXT NOT NULL);
INSERT INTO greetings VALUES (1, 'en', 'Hello'), (2, 'fr', 'Bonjour'), (3, 'de', 'Hallo'),
    (4, 'es', 'Hola'), (5, 'ja', 'こんにちは');

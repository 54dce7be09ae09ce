-- The tables and columns of the Caltech Tomography Database that go-etdb read (reference §8),
-- with rows covering every file classification, NULLs, a private dataset, a bad tax id,
-- tilt_step texts, an escaping file name, an unknown file type, a NULL and a duplicate sid.
-- Written for MariaDB; the tests load it into SQLite as is and into PostgreSQL with
-- "..." for `...` and TIMESTAMP for DATETIME. Rows with odd strings (quotes, backslashes,
-- 10 kB notes) are inserted by conftest.py with bound parameters.
-- Statements end with ";" at the end of a line.

CREATE TABLE UserData (
    DEF_id INTEGER PRIMARY KEY,
    username VARCHAR(64),
    fullname VARCHAR(255)
);

CREATE TABLE SpeciesData (
    DEF_id INTEGER PRIMARY KEY,
    SpeciesName VARCHAR(255),
    strain VARCHAR(255),
    tax_id VARCHAR(32),
    TXT_notes TEXT
);

CREATE TABLE ScopeData (
    DEF_id INTEGER PRIMARY KEY,
    scopename VARCHAR(64),
    TXT_notes TEXT
);

CREATE TABLE TiltSeriesData (
    DEF_id INTEGER PRIMARY KEY,
    tiltseriesID VARCHAR(64),
    title VARCHAR(255),
    tomo_date DATETIME,
    TXT_notes TEXT,
    scope VARCHAR(64),
    roles VARCHAR(255),
    keyimg INTEGER,
    keymov INTEGER,
    single_dual INTEGER,
    defocus DOUBLE PRECISION,
    magnification DOUBLE PRECISION,
    dosage DECIMAL(8, 2),
    tilt_constant INTEGER,
    tilt_min DOUBLE PRECISION,
    tilt_max DOUBLE PRECISION,
    tilt_step VARCHAR(32),
    software_acquisition VARCHAR(255),
    software_process VARCHAR(255),
    emdb VARCHAR(32),
    ispublic INTEGER,
    `REF|UserData|user` INTEGER,
    `REF|SpeciesData|specie` INTEGER
);

CREATE TABLE ThreeDFile (
    DEF_id INTEGER PRIMARY KEY,
    `REF|TiltSeriesData|tiltseries` INTEGER,
    classify VARCHAR(32),
    filename VARCHAR(255),
    TXT_notes TEXT,
    status INTEGER
);

CREATE TABLE DataFile (
    DEF_id INTEGER PRIMARY KEY,
    `REF|TiltSeriesData|tiltseries` INTEGER,
    filetype VARCHAR(32),
    filename VARCHAR(255),
    TXT_notes TEXT,
    auto INTEGER,
    `REF|ThreeDFile|image` INTEGER,
    status INTEGER
);

INSERT INTO UserData VALUES (1, 'grace', 'Grace Jensen'), (2, 'ana', 'Ana Müller-Núñez');

INSERT INTO SpeciesData VALUES
    (1, 'Sulfolobus solfataricus', 'P2', '2287', 'hyperthermophile'),
    (2, 'Caulobacter crescentus', NULL, '155892', NULL),
    (3, 'Bad taxon', 'X', 'abc', NULL);

INSERT INTO ScopeData VALUES (1, 'Caltech Polara', '300 kV FEG'), (2, 'Titan Krios', NULL);

INSERT INTO TiltSeriesData VALUES
    (1, 'ab2014-01-14-1', 'Sulfolobus solfataricus P2 cell', '2014-01-14 10:20:30',
     'frozen-hydrated', 'Caltech Polara', NULL, 1, 1, 1, -10, 22500, 180.5, 1, -60, 60, '1',
     'UCSFTomo', 'Raptor', 'EMD-1234', 1, 1, 1),
    (2, 'ab2014-02-01-2', NULL, '2014-02-01', NULL, 'Titan Krios', NULL, 0, 0, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, '', 'SerialEM, IMOD', NULL, NULL, 1, 2, 2),
    (3, 'ab2015-03-03-3', 'Not public yet', '2015-03-03 00:00:00', NULL, NULL, NULL, 0, 0, 2,
     -8.5, NULL, NULL, 0, -45, 45, '1.5 deg', NULL, NULL, NULL, 0, 1, 2),
    (4, 'ab2015-04-04-4', 'Bad taxon', '2015-04-04', NULL, NULL, NULL, 0, 0, 1, NULL, NULL,
     NULL, NULL, NULL, NULL, '2', NULL, NULL, NULL, 1, 1, 3),
    (6, 'ef2017-06-06-6', 'Bad files', '2017-06-06', NULL, NULL, NULL, 0, 0, 1, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 1),
    (7, NULL, 'No sid', '2017-07-07', NULL, NULL, NULL, 0, 0, 1, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, 1, 1, 1),
    (8, 'gh2018-08-08-8', 'Twice', '2018-08-08', NULL, NULL, NULL, 0, 0, 1, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 1),
    (9, 'gh2018-08-08-8', 'Twice', '2018-08-08', NULL, NULL, NULL, 0, 0, 1, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 1);

INSERT INTO ThreeDFile VALUES
    (10, 1, 'rawdata', 'ab2014-01-14-1.mrc', 'the tilt series', 0),
    (11, 1, 'reconstruction', 'ab2014-01-14-1_full.rec', NULL, 0),
    (12, 1, 'subvolume', 'ribosome.mrc', NULL, 0),
    (13, 1, 'other', 'align.xf', NULL, 0),
    (14, 1, 'rawdata', 'withdrawn.mrc', NULL, 1),
    (20, 6, 'rawdata', '../escape.mrc', NULL, 0);

INSERT INTO DataFile VALUES
    (30, 1, '2dimage', 'slice.jpg', 'a slice', 0, 11, 0),
    (31, 1, '2dimage', 'cap1.jpg', NULL, 2, NULL, 0),
    (32, 1, 'movie', 'slices.mp4', NULL, 0, 11, 0),
    (33, 1, 'other', 'README.txt', 'read me', 0, NULL, 0),
    (34, 6, 'hologram', 'h.dat', NULL, 0, NULL, 0);

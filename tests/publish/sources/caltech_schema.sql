-- The Caltech Tomography Database (Jensen Lab) as go-etdb read it (dbet/sql/*.sql): latin1
-- tables; the file tables (DataFile, ThreeDFile) name their tilt series by its tiltseriesID
-- string in `REF|TiltSeriesData|tiltseries` (varchar(24)), not by DEF_id; status != 0 is a
-- withdrawn file; DataFile.auto = 2 is an automatic snapshot kept in <data root>/Caps/;
-- keyimg/keymov are flags (1..4: the key image/movie exists).
-- Rows cover every file classification, NULLs, latin1 µ/°/Å, a private dual-axis dataset, a
-- bad tax id, tilt_step texts ("-" among them), withdrawn rows, Caps snapshots, a dangling
-- user, a NULL and a blank file name, an escaping file name, an unknown file type, a NULL and a
-- duplicate sid. Written for MariaDB; the tests load it into SQLite and PostgreSQL too, with
-- the table options dropped and, for PostgreSQL, "..." for `...` and TIMESTAMP for DATETIME.
-- Rows with odd strings (quotes, backslashes, CRLF, 10 kB notes) are inserted by conftest.py
-- with bound parameters. Statements end with ";" at the end of a line.

CREATE TABLE UserData (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    username VARCHAR(64),
    fullname VARCHAR(255)
) DEFAULT CHARSET=latin1;

CREATE TABLE SpeciesData (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    SpeciesName VARCHAR(255),
    strain VARCHAR(255),
    tax_id VARCHAR(32),
    TXT_notes TEXT
) DEFAULT CHARSET=latin1;

CREATE TABLE ScopeData (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    scopename VARCHAR(64),
    TXT_notes TEXT
) DEFAULT CHARSET=latin1;

CREATE TABLE TiltSeriesData (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    tiltseriesID VARCHAR(24),
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
) DEFAULT CHARSET=latin1;

CREATE TABLE ThreeDFile (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    `REF|TiltSeriesData|tiltseries` VARCHAR(24),
    classify VARCHAR(32),
    filename VARCHAR(255),
    TXT_notes TEXT,
    status INTEGER NOT NULL DEFAULT 0
) DEFAULT CHARSET=latin1;

CREATE TABLE DataFile (
    DEF_id INTEGER NOT NULL PRIMARY KEY,
    `REF|TiltSeriesData|tiltseries` VARCHAR(24),
    filetype VARCHAR(32),
    filename VARCHAR(255),
    TXT_notes TEXT,
    auto INTEGER,
    `REF|ThreeDFile|image` INTEGER,
    status INTEGER NOT NULL DEFAULT 0
) DEFAULT CHARSET=latin1;

INSERT INTO UserData VALUES (1, 'grace', 'Grace Jensen'), (2, 'ana', 'Ana Müller-Núñez');

INSERT INTO SpeciesData VALUES
    (1, 'Sulfolobus solfataricus', 'P2', '2287', 'hyperthermophile'),
    (2, 'Caulobacter crescentus', NULL, '155892', NULL),
    (3, 'Bad taxon', 'X', 'abc', NULL),
    (5, 'Ångström coccus', 'µ-1', '1234', 'grows at 80 °C, 0.5 µm wide');

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
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 1, 1),
    (10, 'ij2010-01-10-10', 'Å-thin µ-section at 45°', '2010-01-10', 'Tilt ±60°, 2 µm',
     'Caltech Polara', NULL, 1, 0, 1, NULL, NULL, NULL, NULL, -60, 60, '2°', NULL, NULL, NULL,
     1, 1, 5),
    (11, 'ij2010-01-11-11', 'CRLF notes', '2010-01-11', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 2, 2),
    (12, 'ij2010-01-12-12', 'Dangling user', '2010-01-12', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 99, 2),
    (13, 'ij2010-01-13-13', 'Dash tilt step', '2010-01-13', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, -50, 50, '-', NULL, NULL, NULL, 1, 1, 2),
    (14, 'ij2010-01-14-14', 'NULL file name', '2010-01-14', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 1, 2),
    (15, 'ij2010-01-15-15', 'Flash key movie', '2010-01-15', NULL, NULL, NULL, 1, 2, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 1, 2),
    (16, 'ij2010-01-16-16', 'Withdrawn files', '2010-01-16', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 1, 2),
    (17, 'ij2010-01-17-17', 'Dual axis', '2010-01-17', NULL, NULL, NULL, 0, 0, 2, NULL,
     NULL, NULL, NULL, -60, 60, '1', NULL, NULL, NULL, 1, 1, 2),
    (18, 'ij2010-01-18-18', 'Caps with a quote', '2010-01-18', NULL, NULL, NULL, 0, 0, 1,
     NULL, NULL, NULL, NULL, NULL, NULL, '1', NULL, NULL, NULL, 1, 1, 2),
    (19, 'ij2010-01-19-19', 'Text tilt step', '2010-01-19', NULL, NULL, NULL, 0, 0, 1, NULL,
     NULL, NULL, NULL, NULL, NULL, 'n/a', NULL, NULL, NULL, 1, 1, 2),
    (20, 'kl2011-02-20-20', NULL, '2011-02-20', NULL, NULL, NULL, 0, 0, 1, NULL, NULL, NULL,
     NULL, NULL, NULL, '3', NULL, NULL, NULL, 1, 1, 1);

INSERT INTO ThreeDFile VALUES
    (10, 'ab2014-01-14-1', 'rawdata', 'ab2014-01-14-1.mrc', 'the tilt series', 0),
    (11, 'ab2014-01-14-1', 'reconstruction', 'ab2014-01-14-1_full.rec', NULL, 0),
    (12, 'ab2014-01-14-1', 'subvolume', 'ribosome.mrc', NULL, 0),
    (13, 'ab2014-01-14-1', 'other', 'align.xf', NULL, 0),
    (14, 'ab2014-01-14-1', 'rawdata', 'withdrawn.mrc', NULL, 1),
    (20, 'ef2017-06-06-6', 'rawdata', '../escape.mrc', NULL, 0),
    (40, 'ij2010-01-10-10', 'rawdata', 'ij10.mrc', 'µ-scale, 1 Å/px, ±60°', 0),
    (41, 'ij2010-01-11-11', 'rawdata', 'ij11.mrc', NULL, 0),
    (42, 'ij2010-01-12-12', 'rawdata', 'ij12.mrc', NULL, 0),
    (43, 'ij2010-01-13-13', 'rawdata', 'ij13.mrc', NULL, 0),
    (44, 'ij2010-01-14-14', 'rawdata', NULL, 'no name', 0),
    (45, 'ij2010-01-14-14', 'reconstruction', 'ij14.rec', NULL, 0),
    (46, 'ij2010-01-15-15', 'rawdata', 'ij15.mrc', NULL, 0),
    (47, 'ij2010-01-16-16', 'rawdata', 'ij16.mrc', NULL, 0),
    (48, 'ij2010-01-16-16', 'reconstruction', 'old.rec', 'withdrawn', 2),
    (49, 'ij2010-01-17-17', 'rawdata', 'ij17a.mrc', 'axis A', 0),
    (50, 'ij2010-01-17-17', 'rawdata', 'ij17b.mrc', 'axis B', 0),
    (51, 'ij2010-01-18-18', 'rawdata', 'ij18.mrc', NULL, 0),
    (52, 'ij2010-01-19-19', 'rawdata', 'ij19.mrc', NULL, 0),
    (53, 'kl2011-02-20-20', 'reconstruction', 'kl20.rec', NULL, 0);

INSERT INTO DataFile VALUES
    (30, 'ab2014-01-14-1', '2dimage', 'slice.jpg', 'a slice', 0, 11, 0),
    (31, 'ab2014-01-14-1', '2dimage', 'cap1.jpg', NULL, 2, NULL, 0),
    (32, 'ab2014-01-14-1', 'movie', 'slices.mp4', NULL, 0, 11, 0),
    (33, 'ab2014-01-14-1', 'other', 'README.txt', 'read me', 0, NULL, 0),
    (34, 'ef2017-06-06-6', 'hologram', 'h.dat', NULL, 0, NULL, 0),
    (60, 'ij2010-01-14-14', '2dimage', NULL, NULL, 0, 45, 0),
    (61, 'ij2010-01-14-14', 'other', '  ', NULL, 0, NULL, 0),
    (62, 'ij2010-01-16-16', '2dimage', 'gone.jpg', NULL, 0, 47, 1),
    (63, 'ij2010-01-16-16', '2dimage', 'gone-cap.jpg', NULL, 2, NULL, 1),
    (64, 'ij2010-01-18-18', '2dimage', 'ij18 cap''s.jpg', 'it''s a cap', 2, NULL, 0),
    (65, 'kl2011-02-20-20', '2dimage', 'kl20-cap.jpg', NULL, 2, NULL, 0),
    (66, 'kl2011-02-20-20', '2dimage', 'kl20-slice.jpg', 'slice °', 0, 53, 0);

-- The ten stations with the most snowfall (mm) over the whole lake.
SELECT stationid, SUM(value) AS snowfall, COUNT(*) AS observations
FROM weather
WHERE datatype = 'SNOW'
GROUP BY stationid
ORDER BY snowfall DESC, stationid
LIMIT 10

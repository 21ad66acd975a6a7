"""Geo writes from the master's stream: the searches that STORE, recomputed as the master did.

GEOADD arrives already rewritten to `zadd k [CH] [NX|XX] <52-bit geohash> member ...` (see
`t_zset`); GEOSEARCHSTORE and GEORADIUS / GEORADIUSBYMEMBER with STORE or STOREDIST arrive
verbatim, and a replica must recompute them. The stored result (which members, and with
STOREDIST their distances) depends on every floating-point step of the master's search, so
this module is a line-by-line port of Redis's `geohash.c`, `geohash_helper.c`, `geo.c` and
`pqsort.c`, in the variant of the master's version:

- 5.0: `geohashGetAreasByRadius` (bounding box from the centre latitude, step decreased by
  comparing haversine distances), no clamping of decoded cells, results sorted with glibc's
  stable merge-sort `qsort` when COUNT is given.
- 6.0: as 5.0, but decoded coordinates are clamped to the valid range.
- 6.2: GeoShape (BYRADIUS / BYBOX, `geohashCalculateAreasByShapeWGS84`), COUNT ... ANY, the
  partial `pqsort` when COUNT cuts the result.
- 7.0+ and Valkey: the haversine shortcut for equal longitudes (`geohashGetLatDistance`) and
  the cheaper BYBOX test.

The variant is read from the `redis-ver` / `valkey-ver` field of the master's last snapshot
(`Keyspace.loaded_aux`); without one the newest is used. Python floats are C doubles and
`math.sin`/`cos`/`asin`/`sqrt` are the C library's, so evaluating each expression in C's
order gives the master's bits. The appliers do not check expiry.

The geo read commands live here too (see "Reads" at the end): GEOPOS, GEODIST, GEOHASH,
GEOSEARCH, GEORADIUS_RO and GEORADIUSBYMEMBER_RO run the same search (`geo_search`) and
answer with Redis's exact text for distances (`%.4f`-like fixed point) and coordinates
(`%.17Lf` trimmed), and its exact errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from replproxy.args import c_string, option_word, parse_int
from replproxy.dialect import MasterDialect
from replproxy.errors import NOT_FLOAT, SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.pqsort import pqsort
from replproxy.keyspace.reads import NOT_INTEGER, ReadContext, ReplyError, lookup_zset, read_command
from replproxy.keyspace.registry import ApplyError, store_from, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.keyspace.t_zset import (
    double_arg,
    store_zset,
    string2d,
    zadd,
    zset_for_write,
)
from replproxy.keyspace.values import ZSet
from replproxy.resp import reply
from replproxy.resp.request import string2ll

# ---- geohash.c / geohash_helper.c ----

GEO_STEP_MAX = 26
GEO_LAT_MIN = -85.05112878
GEO_LAT_MAX = 85.05112878
GEO_LONG_MIN = -180.0
GEO_LONG_MAX = 180.0
_LAT_SCALE = GEO_LAT_MAX - GEO_LAT_MIN
_LONG_SCALE = GEO_LONG_MAX - GEO_LONG_MIN

D_R = math.pi / 180.0
EARTH_RADIUS_IN_METERS = 6372797.560856
MERCATOR_MAX = 20037726.37

_M64 = (1 << 64) - 1
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA

# Algorithm variants, by the first master version that has them.
V50, V60, V62, V70 = 50, 60, 62, 70
# Redis 6.2.7 backported 7.0's choice of the search step (by the bounding box, not by distances).
V627 = 63


def geo_variant(ks: Keyspace) -> int:
    """Which geo code the master runs (`MasterDialect.geo_variant`: V50, V60, V62 or V70)."""
    return ks.dialect.geo_variant


def _interleave64(xlo: int, ylo: int) -> int:
    x, y = xlo, ylo
    x = (x | (x << 16)) & 0x0000FFFF0000FFFF
    y = (y | (y << 16)) & 0x0000FFFF0000FFFF
    x = (x | (x << 8)) & 0x00FF00FF00FF00FF
    y = (y | (y << 8)) & 0x00FF00FF00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0F
    y = (y | (y << 4)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x << 2)) & 0x3333333333333333
    y = (y | (y << 2)) & 0x3333333333333333
    x = (x | (x << 1)) & _EVEN
    y = (y | (y << 1)) & _EVEN
    return (x | (y << 1)) & _M64


def _deinterleave64(interleaved: int) -> int:
    x = interleaved
    y = interleaved >> 1
    x = x & _EVEN
    y = y & _EVEN
    x = (x | (x >> 1)) & 0x3333333333333333
    y = (y | (y >> 1)) & 0x3333333333333333
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0F
    y = (y | (y >> 2)) & 0x0F0F0F0F0F0F0F0F
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FF
    y = (y | (y >> 4)) & 0x00FF00FF00FF00FF
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFF
    y = (y | (y >> 8)) & 0x0000FFFF0000FFFF
    x = (x | (x >> 16)) & 0x00000000FFFFFFFF
    y = (y | (y >> 16)) & 0x00000000FFFFFFFF
    return x | (y << 32)


def geohash_encode(longitude: float, latitude: float, step: int) -> int | None:
    """`geohashEncode` over the WGS84 ranges: the interleaved bits, None out of range."""
    if (
        longitude > GEO_LONG_MAX
        or longitude < GEO_LONG_MIN
        or latitude > GEO_LAT_MAX
        or latitude < GEO_LAT_MIN
    ):
        return None
    lat_offset = (latitude - GEO_LAT_MIN) / _LAT_SCALE
    long_offset = (longitude - GEO_LONG_MIN) / _LONG_SCALE
    scale = float(1 << step)
    lat_offset *= scale
    long_offset *= scale
    # The doubles are converted to uint32_t (truncation) on the call.
    return _interleave64(int(lat_offset), int(long_offset))


def geohash_align52(bits: int, step: int) -> int:
    return (bits << (52 - step * 2)) & _M64


def geohash_decode(bits: int, step: int) -> tuple[float, float, float, float]:
    """`geohashDecode`: (lon_min, lon_max, lat_min, lat_max) of a cell."""
    hash_sep = _deinterleave64(bits)
    ilato = hash_sep & 0xFFFFFFFF
    ilono = (hash_sep >> 32) & 0xFFFFFFFF
    div = float(1 << step)
    lat_min = GEO_LAT_MIN + (ilato * 1.0 / div) * _LAT_SCALE
    lat_max = GEO_LAT_MIN + (((ilato + 1) & 0xFFFFFFFF) * 1.0 / div) * _LAT_SCALE
    lon_min = GEO_LONG_MIN + (ilono * 1.0 / div) * _LONG_SCALE
    lon_max = GEO_LONG_MIN + (((ilono + 1) & 0xFFFFFFFF) * 1.0 / div) * _LONG_SCALE
    return lon_min, lon_max, lat_min, lat_max


_TWO63 = 9223372036854775808.0
_TWO64 = 18446744073709551616.0


def score_bits(score: float) -> int:
    """`(uint64_t)score` as gcc compiles it on x86-64 (scores of a zset that was not made by
    GEOADD can be anything): truncation, wrapping negatives; below -2^63 (and -inf) the
    "integer indefinite" 2^63, from 2^64 up (and inf) 0."""
    if score < -_TWO63:
        return 1 << 63
    if score >= _TWO64:
        return 0
    return int(score) & _M64


def score_long_long(score: float) -> int:
    """`(long long)score` on x86-64 (`cvttsd2si`): truncation, LLONG_MIN when out of range."""
    return int(score) if -_TWO63 <= score < _TWO63 else -(1 << 63)


def decode_score(score: float, clamp: bool) -> tuple[float, float]:
    """`decodeGeohash`: the centre of a member's 52-bit cell, (longitude, latitude)."""
    lon_min, lon_max, lat_min, lat_max = geohash_decode(score_bits(score), GEO_STEP_MAX)
    lon = (lon_min + lon_max) / 2
    lat = (lat_min + lat_max) / 2
    if clamp:  # 6.0+ (geohashDecodeAreaToLongLat)
        lon = min(max(lon, GEO_LONG_MIN), GEO_LONG_MAX)
        lat = min(max(lat, GEO_LAT_MIN), GEO_LAT_MAX)
    return lon, lat


def _move_x(bits: int, step: int, d: int) -> int:
    x = bits & _ODD
    y = bits & _EVEN
    zz = _EVEN >> (64 - step * 2)
    if d > 0:
        x = x + (zz + 1)
    else:
        x = x | zz
        x = x - (zz + 1)
    x &= _ODD >> (64 - step * 2)
    return (x | y) & _M64


def _move_y(bits: int, step: int, d: int) -> int:
    x = bits & _ODD
    y = bits & _EVEN
    zz = _ODD >> (64 - step * 2)
    if d > 0:
        y = y + (zz + 1)
    else:
        y = y | zz
        y = y - (zz + 1)
    y &= _EVEN >> (64 - step * 2)
    return (x | y) & _M64


def geohash_neighbors(bits: int, step: int) -> dict[str, int]:
    """`geohashNeighbors`."""
    return {
        "east": _move_x(bits, step, 1),
        "west": _move_x(bits, step, -1),
        "south": _move_y(bits, step, -1),
        "north": _move_y(bits, step, 1),
        "north_west": _move_y(_move_x(bits, step, -1), step, 1),
        "north_east": _move_y(_move_x(bits, step, 1), step, 1),
        "south_east": _move_y(_move_x(bits, step, 1), step, -1),
        "south_west": _move_y(_move_x(bits, step, -1), step, -1),
    }


def estimate_steps_by_radius(range_meters: float, lat: float) -> int:
    """`geohashEstimateStepsByRadius`."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), 26)


def _deg_rad(ang: float) -> float:
    return ang * D_R


def _rad_deg(ang: float) -> float:
    return ang / D_R


def _c_cos(x: float) -> float:
    # C's cos(inf) is NaN where Python raises: an infinite radius (a valid argument) gets
    # there, and the NaN bounds it makes then keep every neighbour, as on the master.
    return math.cos(x) if math.isfinite(x) else math.nan


def distance_v50(lon1d: float, lat1d: float, lon2d: float, lat2d: float) -> float:
    """`geohashGetDistance` up to 6.2."""
    lat1r = _deg_rad(lat1d)
    lon1r = _deg_rad(lon1d)
    lat2r = _deg_rad(lat2d)
    lon2r = _deg_rad(lon2d)
    u = math.sin((lat2r - lat1r) / 2)
    v = math.sin((lon2r - lon1r) / 2)
    return (
        2.0
        * EARTH_RADIUS_IN_METERS
        * math.asin(math.sqrt(u * u + math.cos(lat1r) * math.cos(lat2r) * v * v))
    )


def lat_distance(lat1d: float, lat2d: float) -> float:
    """`geohashGetLatDistance` (7.0+)."""
    return EARTH_RADIUS_IN_METERS * abs(_deg_rad(lat2d) - _deg_rad(lat1d))


def distance_v70(lon1d: float, lat1d: float, lon2d: float, lat2d: float) -> float:
    """`geohashGetDistance` from 7.0: equal longitudes take the latitude-only shortcut."""
    lon1r = _deg_rad(lon1d)
    lon2r = _deg_rad(lon2d)
    v = math.sin((lon2r - lon1r) / 2)
    if v == 0.0:
        return lat_distance(lat1d, lat2d)
    lat1r = _deg_rad(lat1d)
    lat2r = _deg_rad(lat2d)
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS_IN_METERS * math.asin(math.sqrt(a))


# ---- the search ----

CIRCULAR, RECTANGLE = 1, 2


@dataclass
class GeoShape:
    type: int = 0
    lon: float = 0.0
    lat: float = 0.0
    conversion: float = 1.0
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0


# A search box: (bits, step); None is a GZERO'd neighbour.
Box = tuple[int, int] | None


def _areas(shape: GeoShape, variant: int) -> list[Box]:
    """`geohashCalculateAreasByShapeWGS84` (6.2+) / `geohashGetAreasByRadius` (5.0, 6.0):
    the centre cell and its 8 neighbours, in `membersOfAllNeighbors` order."""
    longitude, latitude = shape.lon, shape.lat
    distance = distance_v70 if variant >= V70 else distance_v50
    if variant >= V62:
        circular = shape.type == CIRCULAR
        height = shape.conversion * (shape.radius if circular else shape.height / 2)
        width = shape.conversion * (shape.radius if circular else shape.width / 2)
        lat_delta = _rad_deg(height / EARTH_RADIUS_IN_METERS)
        long_delta_top = _rad_deg(
            width / EARTH_RADIUS_IN_METERS / _c_cos(_deg_rad(latitude + lat_delta))
        )
        long_delta_bottom = _rad_deg(
            width / EARTH_RADIUS_IN_METERS / _c_cos(_deg_rad(latitude - lat_delta))
        )
        long_delta = long_delta_bottom if latitude < 0 else long_delta_top
        min_lon, max_lon = longitude - long_delta, longitude + long_delta
        min_lat, max_lat = latitude - lat_delta, latitude + lat_delta
        if circular:
            radius_meters = shape.radius
        else:
            radius_meters = math.sqrt(
                (shape.width / 2) * (shape.width / 2) + (shape.height / 2) * (shape.height / 2)
            )
        radius_meters *= shape.conversion
    else:
        radius_meters = shape.radius * shape.conversion
        long_delta = _rad_deg(radius_meters / EARTH_RADIUS_IN_METERS / math.cos(_deg_rad(latitude)))
        lat_delta = _rad_deg(radius_meters / EARTH_RADIUS_IN_METERS)
        min_lon, max_lon = longitude - long_delta, longitude + long_delta
        min_lat, max_lat = latitude - lat_delta, latitude + lat_delta

    steps = estimate_steps_by_radius(radius_meters, latitude)
    bits = geohash_encode(longitude, latitude, steps)
    if bits is None:
        raise ApplyError(f"search centre {longitude},{latitude} cannot be encoded")
    nb = geohash_neighbors(bits, steps)

    north = geohash_decode(nb["north"], steps)
    south = geohash_decode(nb["south"], steps)
    east = geohash_decode(nb["east"], steps)
    west = geohash_decode(nb["west"], steps)
    if variant >= V627:
        decrease = (
            north[3] < max_lat or south[2] > min_lat or east[1] < max_lon or west[0] > min_lon
        )
    else:
        decrease = (
            distance(longitude, latitude, longitude, north[3]) < radius_meters
            or distance(longitude, latitude, longitude, south[2]) < radius_meters
            or distance(longitude, latitude, east[1], latitude) < radius_meters
            or distance(longitude, latitude, west[0], latitude) < radius_meters
        )
    if steps > 1 and decrease:
        steps -= 1
        bits = geohash_encode(longitude, latitude, steps)
        assert bits is not None
        nb = geohash_neighbors(bits, steps)
    area = geohash_decode(bits, steps)

    boxes: dict[str, Box] = {k: (v, steps) for k, v in nb.items()}
    if steps >= 2:
        if area[2] < min_lat:
            boxes["south"] = boxes["south_west"] = boxes["south_east"] = None
        if area[3] > max_lat:
            boxes["north"] = boxes["north_east"] = boxes["north_west"] = None
        if area[0] < min_lon:
            boxes["west"] = boxes["south_west"] = boxes["north_west"] = None
        if area[1] > max_lon:
            boxes["east"] = boxes["south_east"] = boxes["north_east"] = None
    return [
        (bits, steps),
        boxes["north"],
        boxes["south"],
        boxes["east"],
        boxes["west"],
        boxes["north_east"],
        boxes["north_west"],
        boxes["south_east"],
        boxes["south_west"],
    ]


# A candidate: (dist, score, member), as geoPoint.
Point = tuple[float, float, bytes]


def _within(shape: GeoShape, variant: int) -> Callable[[float], float | None]:
    """`geoWithinShape` / `geoAppendIfWithinRadius`: the distance of a member (by score) to
    the centre, or None when outside the shape."""
    clamp = variant >= V60
    x1, y1 = shape.lon, shape.lat
    if shape.type == CIRCULAR:
        radius = shape.radius * shape.conversion
        distance = distance_v70 if variant >= V70 else distance_v50

        def in_radius(score: float) -> float | None:
            x2, y2 = decode_score(score, clamp)
            d = distance(x1, y1, x2, y2)
            return None if d > radius else d

        return in_radius

    width_m = shape.width * shape.conversion
    height_m = shape.height * shape.conversion
    if variant >= V70:

        def in_box(score: float) -> float | None:
            x2, y2 = decode_score(score, clamp)
            if lat_distance(y2, y1) > height_m / 2:
                return None
            if distance_v70(x2, y2, x1, y2) > width_m / 2:
                return None
            return distance_v70(x1, y1, x2, y2)

        return in_box

    def in_box_v62(score: float) -> float | None:
        x2, y2 = decode_score(score, clamp)
        lon_distance = distance_v50(x2, y2, x1, y2)
        lat_dist = distance_v50(x2, y2, x2, y1)
        if lon_distance > width_m / 2 or lat_dist > height_m / 2:
            return None
        return distance_v50(x1, y1, x2, y2)

    return in_box_v62


def _members_of_all_neighbors(
    zs: ZSet, boxes: list[Box], within: Callable[[float], float | None], limit: int
) -> list[Point]:
    """`membersOfAllNeighbors`: candidates box by box, each box in (score, member) order."""
    ga: list[Point] = []
    last_processed = 0
    index = zs.index
    for i, box in enumerate(boxes):
        if box is None:
            continue
        # Huge radii can make adjacent neighbours equal: skip a repeat of the last one.
        if last_processed and box == boxes[last_processed]:
            continue
        if ga and limit and len(ga) >= limit:
            break
        bits, step = box
        lo = float(geohash_align52(bits, step))
        hi = float(geohash_align52((bits + 1) & _M64, step))
        start, end = zs.score_range(lo, False, hi, True)
        for score, member in index.islice(start, end):
            d = within(score)
            if d is not None:
                ga.append((d, score, member))
            if ga and limit and len(ga) >= limit:
                break
        last_processed = i
    return ga


# ---- distance order for pqsort (sort_gp_asc / sort_gp_desc) ----


def _cmp_asc(a: Point, b: Point) -> int:
    # sort_gp_asc
    if a[0] > b[0]:
        return 1
    if a[0] == b[0]:
        return 0
    return -1


def _cmp_desc(a: Point, b: Point) -> int:
    return -_cmp_asc(a, b)


# ---- the commands ----

_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
SORT_NONE, SORT_ASC, SORT_DESC = 0, 1, 2

RADIUS_COORDS, RADIUS_MEMBER, GEOSEARCHSTORE = 1, 2, 3


def _unit(raw: bytes) -> float:
    conv = _UNITS.get(raw.lower())
    if conv is None:
        raise ApplyError(f"unsupported unit {raw!r}")
    return conv


def _lonlat(lon_raw: bytes, lat_raw: bytes) -> tuple[float, float]:
    lon, lat = double_arg(lon_raw), double_arg(lat_raw)
    if lon < GEO_LONG_MIN or lon > GEO_LONG_MAX or lat < GEO_LAT_MIN or lat > GEO_LAT_MAX:
        raise ApplyError(f"invalid longitude,latitude pair {lon},{lat}")
    return lon, lat


def _member_lonlat(zs: ZSet, member: bytes, clamp: bool) -> tuple[float, float]:
    score = zs.get(member)
    if score is None:
        raise ApplyError("could not decode requested zset member")
    return decode_score(score, clamp)


def geo_search(
    zs: ZSet, shape: GeoShape, variant: int, count: int, any_: bool, sort: int, ordered: bool = True
) -> list[Point]:
    """The search of `georadiusGeneric` once its arguments are known: the candidates of the
    nine boxes, sorted as Redis sorts them (`qsort`, glibc's stable merge sort, when all are
    kept; the partial `pqsort` when COUNT cuts), cut to COUNT. With `ordered` False a full
    result is left unsorted (a STORE does not need the order)."""
    if variant < V62:
        any_ = False  # no ANY before 6.2 (the master would have refused it)
    if count and sort == SORT_NONE and not any_:
        sort = SORT_ASC
    boxes = _areas(shape, variant)
    ga = _members_of_all_neighbors(zs, boxes, _within(shape, variant), count if any_ else 0)
    returned = len(ga) if count == 0 or len(ga) < count else count
    if sort != SORT_NONE and (ordered or returned < len(ga)):
        if returned == len(ga) or variant < V62:
            ga.sort(key=lambda p: p[0], reverse=sort == SORT_DESC)
        else:
            pqsort(ga, _cmp_asc if sort == SORT_ASC else _cmp_desc, 0, returned - 1)
    return ga[:returned]


def georadius_generic(ks: Keyspace, db: int, argv: list[bytes], mode: int) -> None:
    """`georadiusGeneric` for the forms that store (a search without STORE writes nothing)."""
    variant = geo_variant(ks)
    clamp = variant >= V60
    storekey: bytes | None = None
    storedist = False
    src_index = 2 if mode == GEOSEARCHSTORE else 1
    zs = zset_for_write(ks, db, argv[src_index])
    shape = GeoShape()
    if mode == RADIUS_COORDS:
        base = 6
        shape.type = CIRCULAR
        shape.lon, shape.lat = _lonlat(argv[2], argv[3])
        shape.radius, shape.conversion = double_arg(argv[4]), _unit(argv[5])
    elif mode == RADIUS_MEMBER:
        base = 5
        if zs is not None:
            shape.type = CIRCULAR
            shape.lon, shape.lat = _member_lonlat(zs, argv[2], clamp)
            shape.radius, shape.conversion = double_arg(argv[3]), _unit(argv[4])
    else:
        base = 3
        storekey = argv[1]
        storedist = False

    any_ = with_options = False
    sort = SORT_NONE
    count = 0
    n = len(argv)
    i = base
    geosearch = mode == GEOSEARCHSTORE
    while i < n:
        arg = argv[i].lower()
        left = n - i - 1
        if arg in (b"withdist", b"withhash", b"withcoord"):
            with_options = True
        elif arg == b"any":
            any_ = True
        elif arg == b"asc":
            sort = SORT_ASC
        elif arg == b"desc":
            sort = SORT_DESC
        elif arg == b"count" and left >= 1:
            count = parse_int(argv[i + 1])
            if count <= 0:
                raise ApplyError("COUNT must be > 0")
            i += 1
        elif arg in (b"store", b"storedist") and left >= 1 and not geosearch:
            storekey = argv[i + 1]
            storedist = arg == b"storedist"
            i += 1
        elif arg == b"storedist" and geosearch:
            storedist = True
        elif arg == b"frommember" and left >= 1 and geosearch:
            if zs is not None:
                shape.lon, shape.lat = _member_lonlat(zs, argv[i + 1], clamp)
            i += 1
        elif arg == b"fromlonlat" and left >= 2 and geosearch:
            shape.lon, shape.lat = _lonlat(argv[i + 1], argv[i + 2])
            i += 2
        elif arg == b"byradius" and left >= 2 and geosearch:
            shape.type = CIRCULAR
            shape.radius, shape.conversion = double_arg(argv[i + 1]), _unit(argv[i + 2])
            i += 2
        elif arg == b"bybox" and left >= 3 and geosearch:
            shape.type = RECTANGLE
            shape.width, shape.height = double_arg(argv[i + 1]), double_arg(argv[i + 2])
            shape.conversion = _unit(argv[i + 3])
            i += 3
        else:
            raise ApplyError(f"syntax error at {argv[i]!r}")
        i += 1

    if storekey is None:
        return  # a plain search: nothing was written on the master
    if with_options:
        raise ApplyError("STORE is not compatible with WITHDIST, WITHHASH and WITHCOORD")
    if zs is None:
        if ks.delete(db, storekey, fresh=True) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, storekey)
        return
    if geosearch and shape.type == 0:
        raise ApplyError("GEOSEARCHSTORE needs BYRADIUS or BYBOX")

    # When everything is kept the order does not matter (a zset is stored); when COUNT cuts,
    # which of equally distant points are kept depends on the sort Redis ran.
    found = geo_search(zs, shape, variant, count, any_, sort, ordered=False)
    conversion = shape.conversion
    if storedist:
        result = {member: d / conversion for d, _, member in found}
    else:
        result = {member: score for _, score, member in found}
    store_zset(ks, db, storekey, result, b"geosearchstore" if geosearch else b"georadiusstore")


def _georadius_applier(mode: int) -> Callable[[Keyspace, int, list[bytes]], None]:
    def apply(ks: Keyspace, db: int, argv: list[bytes]) -> None:
        try:
            georadius_generic(ks, db, argv, mode)
        except Exception:
            # The written key is the STORE/STOREDIST argument: mark it, not the source.
            for j in range(len(argv) - 1):
                if argv[j].lower() in (b"store", b"storedist"):
                    ks.unsupported_keys.add((db, argv[j + 1]))
            raise

    return apply


def _georadius_roles(argv: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """GEORADIUS[BYMEMBER] key ... STORE|STOREDIST dst: dst written from key."""
    written = [
        argv[j + 1] for j in range(2, len(argv) - 1) if argv[j].lower() in (b"store", b"storedist")
    ]
    return written, [argv[1]]


# keys=(1, 0, 1) marks nothing by position: the applier marks the STORE key itself.
write_command("georadius", keys=(1, 0, 1), roles=_georadius_roles)(
    _georadius_applier(RADIUS_COORDS)
)
write_command("georadiusbymember", keys=(1, 0, 1), roles=_georadius_roles)(
    _georadius_applier(RADIUS_MEMBER)
)


@write_command("geosearchstore", roles=store_from(2))
def geosearchstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    georadius_generic(ks, db, argv, GEOSEARCHSTORE)


@write_command("geoadd")
def geoadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GEOADD is propagated as `zadd`; this covers a verbatim one (e.g. an AOF-style feed)."""
    i = 2
    while i < len(argv) and argv[i].lower() in (b"nx", b"xx", b"ch"):
        i += 1
    if (len(argv) - i) % 3 or len(argv) == i:
        raise ApplyError("GEOADD: syntax error")
    zargv = [b"zadd", *argv[1:i]]
    for j in range(i, len(argv), 3):
        lon, lat = _lonlat(argv[j], argv[j + 1])
        bits = geohash_encode(lon, lat, GEO_STEP_MAX)
        assert bits is not None
        zargv += [b"%d" % geohash_align52(bits, GEO_STEP_MAX), argv[j + 2]]
    zadd(ks, db, zargv)


# =============================================================================================
# Reads: GEOPOS GEODIST GEOHASH GEOSEARCH GEORADIUS_RO GEORADIUSBYMEMBER_RO (geo.c)
# =============================================================================================
#
# The searches run the same code as the STORE appliers above (`geo_search`), in the master's
# variant, so the same members come back in the same order. What is particular to replies:
# distances print as `fixedpoint_d2string(d, 4)` (a bulk string even in RESP3), coordinates
# as `addReplyHumanLongDouble` (`%.17Lf` trimmed; a RESP3 double), WITHHASH as the score
# converted to a long long. Arguments are checked in `georadiusGeneric`'s order: the key's
# type first, then the centre and radius, then the options, then their combinations.

_NOSTORE_COORDS, _NOSTORE_MEMBER, _GEOSEARCH = 11, 12, 13
_UNIT_ERROR = b"ERR unsupported unit provided. please use M, KM, FT, MI"
_NO_MEMBER = b"ERR could not decode requested zset member"
_GEOALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"


def _read_double(raw: bytes, msg: bytes = NOT_FLOAT) -> float:
    v = string2d(raw)
    if v is None:
        raise ReplyError(msg)
    return v


def _read_unit(raw: bytes, variant: int = V70) -> float:
    """`extractUnitOrReply`: case-insensitive from 7.0; before, only the lowercase words,
    with the error saying so."""
    if variant < V70:
        conv = _UNITS.get(raw) if raw == raw.lower() else None
        if conv is None:
            raise ReplyError(b"ERR unsupported unit provided. please use m, km, ft, mi")
        return conv
    conv = _UNITS.get(option_word(raw))
    if conv is None:
        raise ReplyError(_UNIT_ERROR)
    return conv


def _read_lonlat(lon_raw: bytes, lat_raw: bytes) -> tuple[float, float]:
    """`extractLongLatOrReply`."""
    lon = _read_double(lon_raw)
    lat = _read_double(lat_raw)
    if lon < GEO_LONG_MIN or lon > GEO_LONG_MAX or lat < GEO_LAT_MIN or lat > GEO_LAT_MAX:
        raise ReplyError(b"ERR invalid longitude,latitude pair %f,%f" % (lon, lat))
    return lon, lat


def _read_distance(raw: bytes, unit: bytes, variant: int = V70) -> tuple[float, float]:
    """`extractDistanceOrReply`: (radius, conversion)."""
    radius = _read_double(raw, b"ERR need numeric radius")
    if radius < 0:
        raise ReplyError(b"ERR radius cannot be negative")
    return radius, _read_unit(unit, variant)


def _read_box(
    w_raw: bytes, h_raw: bytes, unit: bytes, variant: int = V70
) -> tuple[float, float, float]:
    """`extractBoxOrReply`: (width, height, conversion)."""
    width = _read_double(w_raw, b"ERR need numeric width")
    height = _read_double(h_raw, b"ERR need numeric height")
    if height < 0 or width < 0:
        raise ReplyError(b"ERR height or width cannot be negative")
    return width, height, _read_unit(unit, variant)


def fixed4(d: float) -> bytes:
    """`fixedpoint_d2string(d, 4)`: `llrint(d * 10^4)` written with four decimals."""
    if d == 0:
        return b"0.0000"
    v = d * 10000.0
    n = round(v) if -_TWO63 <= v < _TWO63 else -(1 << 63)  # llrint: to nearest, ties even
    digits = b"%d" % abs(n)
    if len(digits) <= 4:
        text = b"0." + digits.rjust(4, b"0")
    else:
        text = digits[:-4] + b"." + digits[-4:]
    return b"-" + text if n < 0 else text


def human_coord(x: float, proto: int, dialect: MasterDialect) -> bytes:
    """A coordinate as the master's version replies it: `addReplyHumanLongDouble` of a
    double (a bulk string in RESP2, a double in RESP3), or from Redis 8.0 `addReplyDouble`."""
    if dialect.geo_coords_as_doubles:
        return reply.double(x, proto, dialect.double_style)
    text = reply.format_long_double(x)
    if proto == 2:
        return b"$%d\r\n%b\r\n" % (len(text), text)
    return b",%b\r\n" % text


def _distance(variant: int) -> Callable[[float, float, float, float], float]:
    return distance_v70 if variant >= V70 else distance_v50


def _positions(c: ReadContext, argv: list[bytes]) -> list[tuple[float, float] | None]:
    """GEOPOS / GEOHASH: the position of each member named after the key (None: missing)."""
    zs = lookup_zset(c, argv[1])
    clamp = geo_variant(c.ks) >= V60
    scores = [zs.get(m) if zs is not None else None for m in argv[2:]]
    return [None if s is None else decode_score(s, clamp) for s in scores]


@read_command("geopos")
def geopos_read(c: ReadContext, argv: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % (len(argv) - 2)]
    missing = reply.null_array(c.proto)
    for pos in _positions(c, argv):
        if pos is None:
            out.append(missing)
        else:
            out.append(
                b"*2\r\n%b%b"
                % (
                    human_coord(pos[0], c.proto, c.ks.dialect),
                    human_coord(pos[1], c.proto, c.ks.dialect),
                )
            )
    return b"".join(out)


def _geohash_bits(lon: float, lat: float) -> int | None:
    """GEOHASH's 52 bits: the position re-encoded over the standard ranges (latitude
    -90..90, not the -85..85 of the scores); None where `geohashEncode` refuses it."""
    if lon > GEO_LONG_MAX or lon < GEO_LONG_MIN or lat > GEO_LAT_MAX or lat < GEO_LAT_MIN:
        return None
    lat_offset = (lat - -90.0) / (90.0 - -90.0) * float(1 << GEO_STEP_MAX)
    long_offset = (lon - -180.0) / (180.0 - -180.0) * float(1 << GEO_STEP_MAX)
    return _interleave64(int(lat_offset) & 0xFFFFFFFF, int(long_offset) & 0xFFFFFFFF)


def _geohash_string(bits: int) -> bytes:
    """GEOHASH's 11 characters of 52 bits, the 11th always `0`."""
    chars = bytearray(11)
    for i in range(10):
        chars[i] = _GEOALPHABET[(bits >> (52 - (i + 1) * 5)) & 0x1F]
    chars[10] = _GEOALPHABET[0]
    return bytes(chars)


@read_command("geohash")
def geohash_read(c: ReadContext, argv: list[bytes]) -> bytes:
    """Only 5.0 decodes a position off the map (no clamping: a cell at the 180th meridian
    or the 85.05th parallel): its `geohashEncode` refuses it and leaves the stack variable
    as it was, the previous member's hash in the same command (measured on 5.0.7). For a
    first member it is whatever the stack held; the relay answers zeros there."""
    out = [b"*%d\r\n" % (len(argv) - 2)]
    missing = reply.null(c.proto)
    bits = 0
    for pos in _positions(c, argv):
        if pos is None:
            out.append(missing)
            continue
        encoded = _geohash_bits(*pos)
        if encoded is not None:
            bits = encoded
        out.append(b"$11\r\n%b\r\n" % _geohash_string(bits))
    return b"".join(out)


@read_command("geodist")
def geodist_read(c: ReadContext, argv: list[bytes]) -> bytes:
    to_meter = 1.0
    if len(argv) == 5:
        to_meter = _read_unit(argv[4], geo_variant(c.ks))
    elif len(argv) > 5:
        raise ReplyError(SYNTAX)
    zs = lookup_zset(c, argv[1])
    if zs is None:
        return reply.null(c.proto)
    s1, s2 = zs.get(argv[2]), zs.get(argv[3])
    if s1 is None or s2 is None:
        return reply.null(c.proto)
    variant = geo_variant(c.ks)
    x1, y1 = decode_score(s1, variant >= V60)
    x2, y2 = decode_score(s2, variant >= V60)
    return reply.bulk(fixed4(_distance(variant)(x1, y1, x2, y2) / to_meter))


def _georadius_read(c: ReadContext, argv: list[bytes], mode: int) -> bytes:
    """`georadiusGeneric` without STORE (GEOSEARCH and the _RO forms)."""
    variant = geo_variant(c.ks)
    clamp = variant >= V60
    zs = lookup_zset(c, argv[1])
    if zs is None and variant < V70:
        return reply.EMPTY_ARRAY  # before 7.0 a missing key answers before any parsing
    shape = GeoShape()
    if mode == _NOSTORE_COORDS:
        base = 6
        shape.type = CIRCULAR
        shape.lon, shape.lat = _read_lonlat(argv[2], argv[3])
        shape.radius, shape.conversion = _read_distance(argv[4], argv[5], variant)
    elif mode == _NOSTORE_MEMBER:
        base = 5
        if zs is not None:  # without a key the radius is not even parsed
            shape.type = CIRCULAR
            score = zs.get(argv[2])
            if score is None:
                raise ReplyError(_NO_MEMBER)
            shape.lon, shape.lat = decode_score(score, clamp)
            shape.radius, shape.conversion = _read_distance(argv[3], argv[4], variant)
    else:
        base = 2

    withdist = withhash = withcoord = False
    frommember = fromloc = byradius = bybox = False
    sort = SORT_NONE
    any_ = False
    count = 0
    geosearch = mode == _GEOSEARCH
    n = len(argv)
    i = base
    while i < n:
        arg = option_word(argv[i])
        left = n - i - 1
        if arg == b"withdist":
            withdist = True
        elif arg == b"withhash":
            withhash = True
        elif arg == b"withcoord":
            withcoord = True
        elif arg == b"any" and variant >= V62:
            any_ = True
        elif arg == b"asc":
            sort = SORT_ASC
        elif arg == b"desc":
            sort = SORT_DESC
        elif arg == b"count" and left >= 1:
            v = string2ll(argv[i + 1])
            if v is None:
                raise ReplyError(NOT_INTEGER)
            if v <= 0:
                raise ReplyError(b"ERR COUNT must be > 0")
            count = v
            i += 1
        elif arg == b"frommember" and left >= 1 and geosearch and not fromloc:
            if zs is not None:
                score = zs.get(argv[i + 1])
                if score is None:
                    raise ReplyError(_NO_MEMBER)
                shape.lon, shape.lat = decode_score(score, clamp)
            frommember = True
            i += 1
        elif arg == b"fromlonlat" and left >= 2 and geosearch and not frommember:
            shape.lon, shape.lat = _read_lonlat(argv[i + 1], argv[i + 2])
            fromloc = True
            i += 2
        elif arg == b"byradius" and left >= 2 and geosearch and not bybox:
            shape.radius, shape.conversion = _read_distance(argv[i + 1], argv[i + 2], variant)
            shape.type = CIRCULAR
            byradius = True
            i += 2
        elif arg == b"bybox" and left >= 3 and geosearch and not byradius:
            shape.width, shape.height, shape.conversion = _read_box(
                argv[i + 1], argv[i + 2], argv[i + 3], variant
            )
            shape.type = RECTANGLE
            bybox = True
            i += 3
        else:
            raise ReplyError(SYNTAX)
        i += 1

    if geosearch and not (frommember or fromloc):
        raise ReplyError(
            b"ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for %b"
            % c_string(argv[0])
        )
    if geosearch and not (byradius or bybox):
        raise ReplyError(
            b"ERR exactly one of BYRADIUS and BYBOX can be specified for %b" % c_string(argv[0])
        )
    if any_ and not count:
        raise ReplyError(b"ERR the ANY argument requires COUNT argument")
    if zs is None:
        return reply.EMPTY_ARRAY

    try:
        found = geo_search(zs, shape, variant, count, any_, sort)
    except ApplyError:
        # 5.0 only (no clamping): a centre off the map (a member in the 180th meridian's
        # cell) leaves `geohashGetAreasByRadius` searching around an uninitialised hash,
        # whatever the stack held; no cell here, so nothing found.
        return reply.EMPTY_ARRAY
    if not found:
        return reply.EMPTY_ARRAY
    options = withdist + withhash + withcoord
    if not options:
        return reply.bulk_array([member for _, _, member in found])
    proto = c.proto
    conversion = shape.conversion
    head = b"*%d\r\n" % (options + 1)
    out = [b"*%d\r\n" % len(found)]
    for dist, score, member in found:
        out.append(head)
        out.append(b"$%d\r\n%b\r\n" % (len(member), member))
        if withdist:
            out.append(reply.bulk(fixed4(dist / conversion)))
        if withhash:
            out.append(b":%d\r\n" % score_long_long(score))
        if withcoord:
            lon, lat = decode_score(score, clamp)
            out.append(
                b"*2\r\n%b%b"
                % (human_coord(lon, proto, c.ks.dialect), human_coord(lat, proto, c.ks.dialect))
            )
    return b"".join(out)


@read_command("geosearch")
def geosearch_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _georadius_read(c, argv, _GEOSEARCH)


@read_command("georadius_ro")
def georadius_ro_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _georadius_read(c, argv, _NOSTORE_COORDS)


@read_command("georadiusbymember_ro")
def georadiusbymember_ro_read(c: ReadContext, argv: list[bytes]) -> bytes:
    return _georadius_read(c, argv, _NOSTORE_MEMBER)

-- Share of paid seats in active use (0 when the account pays for no seat).
select s.account_id,
       case when s.seats > 0 then cast(u.active_users_30d as double precision) / s.seats else 0 end as contract_usage
from {{ ref('seats') }} s
join {{ ref('active_users_30d') }} u on u.account_id = s.account_id

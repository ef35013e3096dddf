-- The users of the accounts in the at_risk_enterprise audience (ad platforms match people).
select u.*
from {{ ref('user') }} as u
where u.account_id in (select account_id from {{ ref('at_risk_enterprise') }})
